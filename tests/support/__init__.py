"""Test support: real local servers that stand in for what cannot run here."""
