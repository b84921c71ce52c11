require ["environment", "fileinto"];
if environment :is "location" "MDA" { fileinto "MDA"; }
if environment :is "phase" "during" { fileinto "During"; }
