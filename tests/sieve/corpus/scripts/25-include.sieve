require ["include", "fileinto"];
include :personal "25-included";
fileinto "After-Include";
