require ["comparator-i;ascii-numeric", "fileinto"];
if header :is :comparator "i;ascii-numeric" "x-score" "42" { fileinto "FortyTwo"; }
if header :is :comparator "i;ascii-numeric" "x-priority" "3" { fileinto "Normal"; }
