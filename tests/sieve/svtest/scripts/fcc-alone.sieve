require ["fcc", "fileinto"];
fileinto :fcc "Sent" "X";
