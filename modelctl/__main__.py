from modelctl.cli.app import main

main()
