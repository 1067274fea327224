"""Clients for the forges that host the config repository: GitHub, GitLab, Gitea/Forgejo."""
