from mediamesh.cli.main import main

# Guarded: worker processes (forkserver) import the parent's __main__ and must not run the CLI again.
if __name__ == "__main__":
    main()
