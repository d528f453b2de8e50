"""What people see: the command line, the console report and the plots."""
