require ["include", "variables", "fileinto"];
global "where";
include :personal "include-helper";
fileinto "${where}";
