require ["enotify", "variables"];
if header :contains "subject" "lunch" { notify :message "Lunch mail" "mailto:bob@pager.example"; }
