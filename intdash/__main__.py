from intdash.cli import main

main()
