"""The example app's data: projects and tasks in SQLite, always scoped to one organization."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (
    id TEXT PRIMARY KEY, org_id TEXT NOT NULL, name TEXT NOT NULL, created_by TEXT NOT NULL,
    created_at REAL NOT NULL, UNIQUE (org_id, name)
);
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY, org_id TEXT NOT NULL, project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    title TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'open', assignee TEXT, created_by TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""

SEED: dict[str, dict[str, list[tuple[str, str | None]]]] = {
    "org_acme": {
        "Website relaunch": [
            ("Write the launch post", "user_bob"),
            ("Move DNS to the new host", "user_alice"),
        ],
        "Customer survey": [("Draft the questions", None)],
    },
    "org_globex": {"Q3 report": [("Collect the numbers", "user_dave")]},
}


class NotFound(LookupError):
    """No such project or task in the caller's organization."""


@dataclass(frozen=True)
class Project:
    id: str
    name: str
    created_by: str
    open_tasks: int


@dataclass(frozen=True)
class Task:
    id: str
    project: str
    title: str
    status: str
    assignee: str | None
    created_by: str


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


class Store:
    """Projects and tasks; every method takes the organization and never reaches outside it."""

    def __init__(self, path: str | Path) -> None:
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()  # one connection shared by the worker threads
        if self._db.execute("SELECT COUNT(*) FROM projects").fetchone()[0] == 0:
            for org_id, projects in SEED.items():
                for name, tasks in projects.items():
                    project = self.create_project(org_id, "seed", name)
                    for title, assignee in tasks:
                        self.create_task(org_id, "seed", project.name, title, assignee)

    def close(self) -> None:
        self._db.close()

    def _project_id(self, org_id: str, project: str) -> tuple[str, str]:
        row = self._db.execute(
            "SELECT id, name FROM projects WHERE org_id = ? AND (id = ? OR name = ?)",
            (org_id, project, project),
        ).fetchone()
        if row is None:
            raise NotFound(f"No project {project!r} in your organization.")
        return row[0], row[1]

    def list_projects(self, org_id: str) -> list[Project]:
        with self._lock:
            rows = self._db.execute(
                "SELECT p.id, p.name, p.created_by,"
                " (SELECT COUNT(*) FROM tasks t WHERE t.project_id = p.id AND t.status = 'open')"
                " FROM projects p WHERE p.org_id = ? ORDER BY p.name",
                (org_id,),
            ).fetchall()
        return [Project(*row) for row in rows]

    def create_project(self, org_id: str, user_id: str, name: str) -> Project:
        with self._lock, self._db:
            try:
                project_id = _id("prj")
                self._db.execute(
                    "INSERT INTO projects VALUES (?, ?, ?, ?, ?)",
                    (project_id, org_id, name, user_id, time.time()),
                )
            except sqlite3.IntegrityError as exc:
                raise ValueError(f"A project named {name!r} already exists.") from exc
        return Project(project_id, name, user_id, 0)

    def delete_project(self, org_id: str, project: str) -> dict[str, Any]:
        with self._lock, self._db:
            project_id, name = self._project_id(org_id, project)
            tasks = self._db.execute("DELETE FROM tasks WHERE project_id = ?", (project_id,)).rowcount
            self._db.execute("DELETE FROM projects WHERE id = ?", (project_id,))
        return {"deleted": name, "tasks_deleted": tasks}

    def list_tasks(self, org_id: str, project: str | None = None, status: str | None = None) -> list[Task]:
        query = (
            "SELECT t.id, p.name, t.title, t.status, t.assignee, t.created_by FROM tasks t"
            " JOIN projects p ON p.id = t.project_id WHERE t.org_id = ?"
        )
        args: list[Any] = [org_id]
        with self._lock:
            if project is not None:
                query += " AND t.project_id = ?"
                args.append(self._project_id(org_id, project)[0])
            if status is not None:
                query += " AND t.status = ?"
                args.append(status)
            rows = self._db.execute(query + " ORDER BY p.name, t.created_at", args).fetchall()
        return [Task(*row) for row in rows]

    def create_task(
        self, org_id: str, user_id: str, project: str, title: str, assignee: str | None = None
    ) -> Task:
        with self._lock, self._db:
            project_id, name = self._project_id(org_id, project)
            task_id = _id("task")
            self._db.execute(
                "INSERT INTO tasks VALUES (?, ?, ?, ?, 'open', ?, ?, ?)",
                (task_id, org_id, project_id, title, assignee, user_id, time.time()),
            )
        return Task(task_id, name, title, "open", assignee, user_id)

    def complete_task(self, org_id: str, task_id: str) -> Task:
        with self._lock, self._db:
            changed = self._db.execute(
                "UPDATE tasks SET status = 'done' WHERE org_id = ? AND id = ?", (org_id, task_id)
            ).rowcount
        if not changed:
            raise NotFound(f"No task {task_id!r} in your organization.")
        return next(t for t in self.list_tasks(org_id) if t.id == task_id)


def as_dict(item: Project | Task) -> dict[str, Any]:
    return asdict(item)
