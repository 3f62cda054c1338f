from mediamesh.cli.main import main

main()
