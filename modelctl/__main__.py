from modelctl.cli import main

main()
