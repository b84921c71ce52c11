require ["include", "variables", "fileinto"];
global "where";
set "where" "After-global";
fileinto "Included";
