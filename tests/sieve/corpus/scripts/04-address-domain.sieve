require "fileinto";
if address :domain :is "from" "example.com" { fileinto "Friends"; }
elsif address :domain :is ["to", "cc"] "example.org" { fileinto "Work"; }
