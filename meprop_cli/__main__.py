from meprop_cli.cli import main

main()
