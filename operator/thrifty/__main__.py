from thrifty.cli import main

raise SystemExit(main())
