from redsm5_hpo.cli.main import main

raise SystemExit(main())
