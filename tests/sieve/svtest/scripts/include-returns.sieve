require ["include", "fileinto"];
return;
fileinto "Never";
