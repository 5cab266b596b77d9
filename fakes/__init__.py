"""Stand-in servers for testing the harness itself (fake or deliberately faulty V2 endpoints)."""
