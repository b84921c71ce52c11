if header :is "subject" "x" {
  keep;
}
else keep;
