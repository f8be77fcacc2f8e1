"""Deployment files (deploy/): offline validators, no database."""
