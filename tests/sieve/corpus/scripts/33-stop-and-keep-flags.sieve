require ["imap4flags"];
setflag "\\Answered";
if true { stop; }
discard;
