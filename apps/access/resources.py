"""CSV import and export of driver tokens and grants (django-import-export resources).

The admin runs every import twice: a dry run inside a rolled-back transaction that lists each bad
row with its errors, and, only when no row is bad, the real import after the operator confirms.
Any row failing on the real run rolls the whole file back, so a file is written entirely or not at all.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from import_export import fields, resources, widgets  # type: ignore[import-untyped]

from apps.access.identifiers import driver_token_check
from apps.access.models import DriverToken, Grant, Station, TokenGroup
from apps.access.services import (
    grant_create,
    grant_update,
    station_ensure,
    token_block,
    token_create,
    token_unblock,
    token_update,
)

DATETIME_HELP = "ISO 8601, e.g. 2026-12-31T23:59:00Z; a date alone means its midnight, no offset means UTC"


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


class IsoDateTimeWidget(widgets.Widget):
    """Date-times as ISO 8601 in both directions, so an exported file imports unchanged."""

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> datetime | None:
        parsed = value if isinstance(value, datetime) else self._parse(_text(value))
        if parsed is None:
            return None
        if timezone.is_naive(parsed):
            parsed = parsed.replace(tzinfo=UTC)
        return parsed

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> str:
        return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else ""

    @staticmethod
    def _parse(text: str) -> datetime | None:
        if not text:
            return None
        try:
            parsed = parse_datetime(text)
            if parsed is None and (day := parse_date(text)) is not None:
                parsed = datetime.combine(day, time.min)
        except ValueError:  # well-formed but impossible, e.g. 2026-02-30
            parsed = None
        if parsed is None:
            raise ValueError(f"'{text}' is not a date and time ({DATETIME_HELP})")
        return parsed


class ChoiceWidget(widgets.Widget):
    """One of a model field's choices, case-insensitive; an empty cell means the field's default."""

    def __init__(self, choices: list[tuple[str, str]], default: str) -> None:
        super().__init__()
        self.values = [value for value, _ in choices]
        self.default = default

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> str:
        text = _text(value).lower()
        if not text:
            return self.default
        if text not in self.values:
            raise ValueError(f"'{text}' is not one of {', '.join(self.values)}")
        return text


class DriverTokenValueWidget(widgets.Widget):
    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> str:
        return driver_token_check(_text(value))


class TokenGroupWidget(widgets.Widget):
    """A token group by name; empty means no group. Groups are not created by an import (typos)."""

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> TokenGroup | None:
        name = _text(value)
        if not name:
            return None
        group = TokenGroup.objects.filter(name=name).first()
        if group is None:
            raise ValueError(f"there is no token group named '{name}': add it under Token groups first")
        return group

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> str:
        return value.name if isinstance(value, TokenGroup) else ""


class TokenByValueWidget(widgets.Widget):
    """A grant's token, named by its value; it must exist (import the tokens first)."""

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> DriverToken | None:
        text = _text(value)
        if not text:
            return None
        token = DriverToken.objects.filter(value=driver_token_check(text)).first()
        if token is None:
            raise ValueError(f"there is no token '{text}': import or add the token first")
        return token

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> str:
        return value.value if isinstance(value, DriverToken) else ""


class StationByIdWidget(widgets.Widget):
    """A grant's station by id (any accepted form); empty means every station.

    A well-formed id that is not known yet adds the station, as insertACL does: stations are
    identified by what their hardware sends, and a new site's grants often arrive before anything else.
    """

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> Station | None:
        text = _text(value)
        if not text:
            return None
        return station_ensure(station_id=text)

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> str:
        return value.station_id if isinstance(value, Station) else ""


class _StrictColumnsResource(resources.ModelResource):
    """Refuses files with missing or unknown columns, and rolls back on any invalid row."""

    required_columns: tuple[str, ...] = ()

    def import_data(self, dataset: Any, **kwargs: Any) -> Any:
        # Also on the confirmed run: a row that became invalid since the preview writes nothing.
        kwargs["rollback_on_validation_errors"] = True
        return super().import_data(dataset, **kwargs)

    def before_import(self, dataset: Any, **kwargs: Any) -> None:
        headers = [_text(header) for header in dataset.headers or []]
        known = {field.column_name for field in self.fields.values()}
        missing = [column for column in self.required_columns if column not in headers]
        unknown = [column for column in headers if column not in known]
        problems = []
        if missing:
            problems.append(f"missing columns: {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown columns: {', '.join(unknown)}")
        if problems:
            raise ValueError(f"{'; '.join(problems)} (the columns are: {', '.join(sorted(known))})")

    def after_import(self, dataset: Any, result: Any, **kwargs: Any) -> None:
        super().after_import(dataset, result, **kwargs)
        # The admin's error table shows each bad row under the file's own column names.
        result.file_headers = list(dataset.headers or [])


class DriverTokenResource(_StrictColumnsResource):
    """Tokens by value: a known value updates that token, a new one adds it. Nothing is deleted."""

    required_columns = ("value",)

    value = fields.Field(attribute="value", column_name="value", widget=DriverTokenValueWidget())
    type = fields.Field(
        attribute="type",
        column_name="type",
        widget=ChoiceWidget(DriverToken.Type.choices, DriverToken.Type.RFID),
    )
    status = fields.Field(
        attribute="status",
        column_name="status",
        widget=ChoiceWidget(DriverToken.Status.choices, DriverToken.Status.ACTIVE),
    )
    valid_until = fields.Field(attribute="valid_until", column_name="valid_until", widget=IsoDateTimeWidget())
    group = fields.Field(attribute="group", column_name="group", widget=TokenGroupWidget())
    note = fields.Field(attribute="note", column_name="note", widget=widgets.CharWidget())

    class Meta:
        model = DriverToken
        name = "Driver tokens"
        fields = ("value", "type", "status", "valid_until", "group", "note")
        import_id_fields = ("value",)
        skip_unchanged = True
        report_skipped = True
        clean_model_instances = True

    def get_instance(self, instance_loader: Any, row: dict[str, Any]) -> DriverToken | None:
        # A malformed value finds nothing here and is reported by its field, as a row error.
        return DriverToken.objects.filter(value=_text(row.get("value"))).first()

    def get_queryset(self) -> Any:
        return DriverToken.objects.select_related("group")

    def do_instance_save(self, instance: DriverToken, is_create: bool) -> None:
        if is_create:
            token = token_create(
                value=instance.value,
                type=instance.type,
                valid_until=instance.valid_until,
                group=instance.group,
                note=instance.note,
            )
            instance.pk, instance.created_at, instance.updated_at = (
                token.pk,
                token.created_at,
                token.updated_at,
            )
        else:
            token = DriverToken.objects.get(pk=instance.pk)
            token_update(
                token=token,
                type=instance.type,
                valid_until=instance.valid_until,
                group=instance.group,
                note=instance.note,
            )
        if instance.status != token.status:
            (token_block if instance.status == DriverToken.Status.BLOCKED else token_unblock)(token=token)


# A grant as operators see it, in this order: the CSV's columns (after its id) and the admin's page.
GRANT_RECORD_FIELDS = (
    "token",
    "group",
    "station",
    "valid_from",
    "valid_until",
    "note",
    "revoked_at",
    "created_by",
    "created_at",
)


class GrantResource(_StrictColumnsResource):
    """Grants of a token (by value) or a group (by name) at one station or, empty, at every station.

    A row identical to a live grant (same holder, station and validity) is that grant: unchanged it
    is skipped, so importing the same file twice adds nothing. Rows of revoked grants (an export
    carries revoked_at) are skipped: importing them must not bring revoked access back.
    """

    required_columns = ("token", "station")

    id = fields.Field(attribute="id", column_name="id", readonly=True, widget=widgets.IntegerWidget())
    token = fields.Field(attribute="token", column_name="token", widget=TokenByValueWidget())
    group = fields.Field(attribute="group", column_name="group", widget=TokenGroupWidget())
    station = fields.Field(attribute="station", column_name="station", widget=StationByIdWidget())
    valid_from = fields.Field(attribute="valid_from", column_name="valid_from", widget=IsoDateTimeWidget())
    valid_until = fields.Field(attribute="valid_until", column_name="valid_until", widget=IsoDateTimeWidget())
    note = fields.Field(attribute="note", column_name="note", widget=widgets.CharWidget())
    revoked_at = fields.Field(
        attribute="revoked_at", column_name="revoked_at", readonly=True, widget=IsoDateTimeWidget()
    )
    created_by = fields.Field(attribute="created_by__username", column_name="created_by", readonly=True)
    created_at = fields.Field(
        attribute="created_at", column_name="created_at", readonly=True, widget=IsoDateTimeWidget()
    )

    class Meta:
        model = Grant
        name = "Grants"
        fields = ("id", *GRANT_RECORD_FIELDS)
        import_id_fields: tuple[str, ...] = ()
        skip_unchanged = True
        report_skipped = True
        clean_model_instances = True

    def get_instance(self, instance_loader: Any, row: dict[str, Any]) -> Grant | None:
        """The live grant this row describes, if there is one (None also for a row with bad cells)."""
        try:
            holder = {
                "token": self.fields["token"].clean(row),
                "group": self.fields["group"].clean(row) if "group" in row else None,
            }
            window = {
                name: self.fields[name].clean(row) if name in row else None
                for name in ("valid_from", "valid_until")
            }
            station = self.fields["station"].clean(row)
        except (ValueError, KeyError):
            return None
        return (
            Grant.objects.filter(revoked_at=None, station=station, **holder, **window).order_by("pk").first()
        )

    def import_instance(self, instance: Grant, row: dict[str, Any], **kwargs: Any) -> None:
        errors: dict[str, Any] = {}
        try:
            super().import_instance(instance, row, **kwargs)
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        cells = {name: _text(row.get(name)) for name in ("token", "group")}
        if "token" not in errors and "group" not in errors:
            if not cells["token"] and not cells["group"]:
                errors["token"] = ["name a token (or a group in the group column)"]
            elif cells["token"] and cells["group"]:
                errors["group"] = ["a grant belongs to a token or to a group, not both"]
        if (
            "valid_from" not in errors
            and "valid_until" not in errors
            and instance.valid_from is not None
            and instance.valid_until is not None
            and instance.valid_until <= instance.valid_from
        ):
            errors["valid_until"] = ["must be later than valid_from"]
        if errors:
            raise ValidationError(errors)

    def skip_row(
        self, instance: Any, original: Any, row: dict[str, Any], import_validation_errors: Any = None
    ) -> bool:
        if _text(row.get("revoked_at")):
            return True
        return bool(super().skip_row(instance, original, row, import_validation_errors))

    def before_save_instance(self, instance: Any, row: dict[str, Any], **kwargs: Any) -> None:
        user = kwargs.get("user")
        self._importing_user = user if user is not None and user.is_authenticated else None

    def do_instance_save(self, instance: Grant, is_create: bool) -> None:
        if not is_create:  # only the note can differ: the row matched this grant on everything else
            grant_update(grant=Grant.objects.get(pk=instance.pk), note=instance.note)
            return
        grant = grant_create(
            token=instance.token,
            group=instance.group,
            station=instance.station,
            valid_from=instance.valid_from,
            valid_until=instance.valid_until,
            note=instance.note,
            created_by=getattr(self, "_importing_user", None),
        )
        instance.pk, instance.created_at, instance.created_by_id = (
            grant.pk,
            grant.created_at,
            grant.created_by_id,
        )

    def get_queryset(self) -> Any:
        return Grant.objects.select_related("token", "group", "station", "created_by")
