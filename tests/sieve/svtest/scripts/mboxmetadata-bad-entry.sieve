require "mboxmetadata";
if metadata :is "INBOX" "comment" "x" { keep; }
