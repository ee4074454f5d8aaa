from dbmaint.cli import main

main()
