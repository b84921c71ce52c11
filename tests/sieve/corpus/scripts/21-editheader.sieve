require ["editheader", "fileinto"];
addheader "X-Filtered" "yes";
if header :is "x-filtered" "yes" { fileinto "Edited"; }
deleteheader "x-spam-flag";
if not exists "x-spam-flag" { fileinto "Clean"; }
