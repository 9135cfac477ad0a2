"""descentlab.course: the web app that teaches the optimizers (lessons, races, clips, quizzes).

``create_app(Settings(...))`` builds the FastAPI application; ``descentlab serve`` runs it.
"""

from .app import Settings, create_app
from .content import ContentError, load_course

__all__ = ["ContentError", "Settings", "create_app", "load_course"]
