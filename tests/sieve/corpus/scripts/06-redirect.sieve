require "copy";
if address :is "to" "bob@example.org" { redirect :copy "bob@elsewhere.example"; }
if header :contains "subject" "release" { redirect "archive@example.net"; redirect "ARCHIVE@example.net"; }
