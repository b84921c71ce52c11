require "reject";
if header :contains "subject" "WON" { reject "No lotteries, thank you."; }
