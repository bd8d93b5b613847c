"""Who owns an instance: the team in team mode, the user in user mode, always from the session."""

from CTFd.utils import config
from CTFd.utils.user import get_current_team, get_current_user


def current_owner():
    """The owner id of the logged-in account, or None (no user, or no team in team mode)."""
    user = get_current_user()
    if user is None:
        return None
    if config.is_teams_mode():
        team = get_current_team()
        return None if team is None else f"team-{team.id}"
    return f"user-{user.id}"


def describe(owner):
    """'team-3' -> ('team', 3) for admin pages."""
    kind, _, number = (owner or "").partition("-")
    return kind, int(number) if number.isdigit() else None
