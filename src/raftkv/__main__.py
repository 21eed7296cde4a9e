from raftkv.cli import main

raise SystemExit(main())
