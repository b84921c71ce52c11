require "fileinto";
if allof (exists "message-id", not exists "auto-submitted", anyof (size :under 1K, header :contains "from" "eve")) { fileinto "Small"; }
if size :over 500 { fileinto "Big"; }
