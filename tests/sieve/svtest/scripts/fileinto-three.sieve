require "fileinto";
if address :contains "from" "list" {
  fileinto "Lists";
}
fileinto "Archive";
keep;
fileinto "Lists";
