from hermit.cli import main

main()
