require ["imap4flags", "fileinto"];
if header :contains "subject" ["lunch", "invoice", "rechnung"] {
  addflag "\\Flagged";
  addflag "$Important";
}
if exists "x-spam-flag" { setflag "\\Seen"; fileinto :flags "\\Seen $Junk" "Junk"; }
