require ["duplicate", "fileinto"];
if duplicate { fileinto "Dups"; } else { keep; }
