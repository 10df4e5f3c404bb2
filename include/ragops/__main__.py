from ragops.cli import main

raise SystemExit(main())
