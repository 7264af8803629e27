"""Querysets of a fixed shape, compiled to SQL once per process.

Django compiles a queryset to SQL each time it runs it. For the few queries
every reader request makes (the enrollment with its study and reader, the
locked reading session with everything a submit needs), compiling took more
CPU than sending the query and reading its row: a third of a reader
request's time in the app (cProfile of bench/reader_queries.py's walk; see
bench/RESULTS.md). A :class:`PreparedQuery` builds its queryset once with
placeholder values, keeps the SQL and the compiler's plan of the row, and
afterwards binds each call's values into that SQL and builds the rows into
model instances, ``select_related`` objects included, as Django's
``ModelIterable`` does.

Written by hand: Django has no cache of compiled queries, and no maintained
package adds one. Only for querysets whose SQL does not depend on the values
(no ``__in`` lists, no ``None`` that turns ``=`` into ``IS NULL``): each
variant of a shape is its own PreparedQuery.

The answer a reader submits is written the same way: :func:`insert` and
:func:`update` are ``Model.save()`` for a new row and for ``update_fields``,
with the statement's SQL written once per model, fields and database (the
ORM's save took a sixth of a submit's CPU, compiling its two statements).
Both fall back to ``save()`` where anything listens for a model's save
signals, so no receiver is ever skipped.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

from django.db import connections, transaction
from django.db.models import Field, Model, QuerySet
from django.db.models.query import get_related_populators
from django.db.models.signals import post_save, pre_save

_placeholder_numbers = itertools.count(1)


class _Placeholder:
    """Stand-in values, each a different one, found again in the compiled
    parameters by equality (a clash is caught there). Integers stay within
    every integer field's range, smallint and positive ones included: Django
    compiles an out-of-range value to "matches nothing"."""

    @staticmethod
    def integer() -> int:
        return 32_000 + next(_placeholder_numbers) % 700

    @staticmethod
    def text() -> str:
        return f"\x00tt-placeholder-{next(_placeholder_numbers)}"


class PreparedQuery:
    """``build(**values)`` -> a queryset; ``PreparedQuery(build, user_id=int,
    slug=str)(user_id=1, slug="knee")`` -> its model instances.

    The first call on a database compiles ``build`` with placeholder values
    (inside a transaction where the queryset locks rows, as Django requires
    of ``select_for_update``); the SQL must contain each value exactly once.
    """

    def __init__(self, build: Callable[..., QuerySet], **kinds: type) -> None:
        self._build = build
        self._kinds = kinds
        self._compiled: dict[str, tuple[Any, ...]] = {}
        self._lock = threading.Lock()

    def __call__(self, *, using: str = "default", **values: Any) -> list[Model]:
        if set(values) != set(self._kinds):
            raise TypeError(f"expected values for {sorted(self._kinds)}")
        compiled = self._compiled.get(using) or self._compile(using)
        sql, params, slots, compiler, converters, plan = compiled
        bound = list(params)
        for name, index in slots:
            bound[index] = values[name]
        with connections[using].cursor() as cursor:
            cursor.execute(sql, bound)
            rows = cursor.fetchall()
        if converters:
            rows = compiler.apply_converters(rows, converters)
        return [plan(row) for row in rows]

    def _compile(self, using: str) -> tuple[Any, ...]:
        with self._lock:
            if using in self._compiled:
                return self._compiled[using]
            placeholders = {
                name: _Placeholder.integer() if kind is int else _Placeholder.text()
                for name, kind in self._kinds.items()
            }
            queryset = self._build(**placeholders).using(using)
            compiler = queryset.query.get_compiler(using=using)
            if (
                queryset.query.select_for_update
                and not connections[using].in_atomic_block
            ):
                with transaction.atomic(using=using):
                    sql, params = compiler.as_sql()
            else:
                sql, params = compiler.as_sql()
            slots = []
            for name, value in placeholders.items():
                where = [i for i, p in enumerate(params) if p == value]
                if len(where) != 1:
                    raise ValueError(
                        f"{name!r} is in the SQL {len(where)} times, not once"
                    )
                slots.append((name, where[0]))
            plan = _row_plan(compiler, using)
            # What results_iter works out on every call: the same for every row.
            fields = [s[0] for s in compiler.select[: compiler.col_count]]
            if compiler.has_composite_fields(fields):
                raise ValueError("a prepared query cannot select composite fields")
            converters = compiler.get_converters(fields)
            self._compiled[using] = (
                sql, tuple(params), slots, compiler, converters, plan,
            )  # fmt: skip
            return self._compiled[using]


def _row_plan(compiler, db: str) -> Callable[[tuple], Model]:
    """The row -> instance step of Django's ModelIterable, for this compiler."""
    select, klass_info = compiler.select, compiler.klass_info
    if compiler.annotation_col_map:
        raise ValueError("a prepared query cannot have annotations")
    model_cls = klass_info["model"]
    select_fields = klass_info["select_fields"]
    start, end = select_fields[0], select_fields[-1] + 1
    init_list = [f[0].target.attname for f in select[start:end]]
    related_populators = get_related_populators(klass_info, select, db)

    def plan(row: tuple) -> Model:
        obj = model_cls.from_db(db, init_list, row[start:end])
        for populator in related_populators:
            populator.populate(row, obj)
        return obj

    return plan


# --- writes -------------------------------------------------------------------

_statements: dict[tuple, tuple[str, tuple[Field, ...]]] = {}


def _listened(model: type[Model]) -> bool:
    return pre_save.has_listeners(model) or post_save.has_listeners(model)


def _columns(fields) -> list[str]:
    return [f.column for f in fields]


def _new_row_fields(meta) -> tuple[Field, ...]:
    """The fields an INSERT of a new row binds: all but an automatic key."""
    return tuple(
        f
        for f in meta.local_concrete_fields
        if f is not meta.auto_field and not f.generated
    )


def _statement(model: type[Model], kind: str, names: tuple[str, ...], using: str):
    """The SQL of an INSERT of a new row (``names`` empty: every column but an
    automatic primary key, returning it) or of an UPDATE of ``names`` by
    primary key, with the fields whose values it binds, in order."""
    key = (model, kind, names, using)
    found = _statements.get(key)
    if found is not None:
        return found
    meta, quote = model._meta, connections[using].ops.quote_name
    table = quote(meta.db_table)
    if kind == "insert":
        fields = _new_row_fields(meta)
        sql = (
            f"INSERT INTO {table} ({', '.join(quote(c) for c in _columns(fields))}) "
            f"VALUES ({', '.join(['%s'] * len(fields))}) "
            f"RETURNING {quote(meta.pk.column)}"
        )
    else:
        fields = tuple(meta.get_field(name) for name in names)
        assignments = ", ".join(f"{quote(c)} = %s" for c in _columns(fields))
        sql = f"UPDATE {table} SET {assignments} WHERE {quote(meta.pk.column)} = %s"
        fields += (meta.pk,)
    if any(hasattr(f, "get_placeholder") for f in fields):
        raise ValueError(f"{model.__name__} has a field with an SQL placeholder")
    _statements[key] = (sql, fields)
    return sql, fields


def insert(obj: Model, *, using: str = "default") -> None:
    """``obj.save()`` of a new row whose primary key the database assigns."""
    model, connection = type(obj), connections[using]
    if (
        _listened(model)
        or not obj._state.adding
        or obj.pk is not None
        or not connection.features.can_return_columns_from_insert
    ):
        obj.save(using=using, force_insert=True)
        return
    sql, fields = _statement(model, "insert", (), using)
    values = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        obj.pk = cursor.fetchone()[0]
    obj._state.adding, obj._state.db = False, using


def update(obj: Model, fields: list[str], *, using: str = "default") -> None:
    """``obj.save(update_fields=fields)`` of a row that exists."""
    model = type(obj)
    if _listened(model):
        obj.save(using=using, update_fields=fields)
        return
    connection = connections[using]
    sql, bound = _statement(model, "update", tuple(fields), using)
    values = [f.get_db_prep_save(f.pre_save(obj, False), connection) for f in bound]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        if cursor.rowcount != 1:
            raise model.DoesNotExist(f"{model.__name__} {obj.pk} is gone")


def writes_combine(*models: type[Model], using: str = "default") -> bool:
    """Whether :func:`insert_if_moved` can write to these models: PostgreSQL
    (SQLite has no data-modifying WITH), and no receiver of their save
    signals to skip."""
    return connections[using].vendor == "postgresql" and not any(
        _listened(m) for m in models
    )


def insert_if_moved(
    obj: Model, row: Model, fields: list[str], *, expect: dict[str, Any],
    using: str = "default",
) -> bool:  # fmt: skip
    """In one statement: ``row.save(update_fields=fields)`` only where the row
    still holds ``expect``'s values (column name -> value, None for NULL),
    and ``obj.save()`` of a new row only if it did. False where the row had
    moved on: nothing is written. One statement is one transaction, so the
    two rows are written together or not at all, and a concurrent writer of
    ``row`` waits for it, then finds the values it expected gone."""
    connection = connections[using]
    model, row_model = type(obj), type(row)
    nulls = tuple((name, value is None) for name, value in expect.items())
    key = (model, row_model, tuple(fields), nulls, using)
    found = _combined.get(key)
    if found is None:
        found = _combined[key] = _combined_statement(
            model, row_model, fields, nulls, connection
        )
    sql, moved, inserted = found
    params = [f.get_db_prep_save(f.pre_save(row, False), connection) for f in moved]
    params.append(row.pk)
    params += [value for value in expect.values() if value is not None]
    params += [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in inserted]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        written = cursor.fetchone()
    if written is None:
        return False
    obj.pk = written[0]
    obj._state.adding, obj._state.db = False, using
    return True


_combined: dict[tuple, tuple[str, tuple[Field, ...], tuple[Field, ...]]] = {}


def _combined_statement(model, row_model, fields, nulls, connection):
    """The SQL of :func:`insert_if_moved`, with the fields whose values it
    binds: the row's moved fields, then the new row's."""
    quote = connection.ops.quote_name
    meta, row_meta = model._meta, row_model._meta
    inserted = _new_row_fields(meta)
    moved = tuple(row_meta.get_field(name) for name in fields)
    conditions = [f"{quote(row_meta.pk.column)} = %s"] + [
        f"{quote(row_meta.get_field(name).column)} " + ("IS NULL" if null else "= %s")
        for name, null in nulls
    ]
    # Typed placeholders: in a SELECT list PostgreSQL cannot tell a
    # parameter's type from the column it goes into.
    sql = (
        f"WITH moved AS (UPDATE {quote(row_meta.db_table)} SET "
        + ", ".join(f"{quote(f.column)} = %s" for f in moved)
        + f" WHERE {' AND '.join(conditions)} RETURNING 1) "
        f"INSERT INTO {quote(meta.db_table)} "
        f"({', '.join(quote(c) for c in _columns(inserted))}) SELECT "
        + ", ".join(f"%s::{f.cast_db_type(connection)}" for f in inserted)
        + f" FROM moved RETURNING {quote(meta.pk.column)}"
    )
    if any(hasattr(f, "get_placeholder") for f in moved + inserted):
        raise ValueError(f"{model.__name__} has a field with an SQL placeholder")
    return sql, moved, inserted
