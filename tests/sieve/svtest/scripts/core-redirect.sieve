redirect "archive@example.net";
redirect "Archive@example.net";
keep;
