from dbmaint.cli import console_main

console_main()
