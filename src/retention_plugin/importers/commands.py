"""``retention import shopify | shopify-csv | transactions | zendesk``.

Each prints ``imported N orders (M lines), skipped K already imported,
rejected R rows`` (or the tickets' equivalent) and one line per rejected row,
``line 17: Lineitem quantity: 'x' is not a whole number``. Exit status 0 even
when rows were rejected (a warning says so on stderr); with ``--strict`` the
file is checked first and nothing is imported if any row would be rejected
(exit status 1). A file that is not of the expected kind is a usage error
(exit status 2) and nothing is written.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from ..clihelp import ConfigProblem, echo_json, pass_app, require_schema
from .reading import NullBar
from .report import MAX_SHOWN_REJECTS, ImportFileError, ImportReport
from .values import RowError, parse_currency, parse_date_or_time


class WhenType(click.ParamType):
    """A date (midnight UTC) or an ISO 8601 date and time (UTC when it has no offset)."""

    name = "DATE"

    def convert(self, value, param, ctx):
        if isinstance(value, datetime):
            return value
        try:
            return parse_date_or_time(str(value), "date", tz=timezone.utc)
        except RowError:
            self.fail(f"{value!r} is not a date (YYYY-MM-DD) or an ISO 8601 date and time", param, ctx)


WHEN = WhenType()


class _Progress:
    """A click progress bar on stderr, sized in bytes (or another unit), that can start over."""

    def __init__(self, enabled: bool, length: int | None, label: str):
        self.enabled = enabled and length is not None and length > 0
        self.length = length
        self.bar = NullBar()
        self.start(label)

    def start(self, label: str) -> None:
        self.finish()
        if self.enabled:
            self.bar = click.progressbar(length=self.length, label=label, file=sys.stderr, show_eta=True)
            self.bar.__enter__()

    def update(self, n: int) -> None:
        self.bar.update(n)

    def finish(self) -> None:
        if not isinstance(self.bar, NullBar):
            self.bar.__exit__(None, None, None)
            self.bar = NullBar()


def _report(report: ImportReport, *, as_json: bool, strict: bool = False, summary: str | None = None) -> None:
    if as_json:
        echo_json(report.as_dict())
    else:
        click.echo(summary or report.summary())
        messages = report.reject_messages()
        for m in messages[:MAX_SHOWN_REJECTS]:
            click.echo(f"  {m}")
        if len(messages) > MAX_SHOWN_REJECTS:
            click.echo(f"  ... and {len(messages) - MAX_SHOWN_REJECTS} more (--json lists them all)")
    if report.rejected_rows:
        if strict:
            click.echo(f"--strict: {report.rejected_rows} rows would be rejected, so nothing was imported", err=True)
            sys.exit(1)
        click.echo(f"warning: {report.rejected_rows} rows were rejected (see above); fix them and import the "
                   "same file again: what is already imported is skipped", err=True)


def _file_error(e: Exception):
    return click.BadParameter(str(e), param_hint="FILE")


@click.group("import")
def import_group():
    """Import order and ticket history (no feature hooks fire: no points or mails for past orders)."""


_FILE = click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
_STRICT = click.option("--strict", is_flag=True,
                       help="Check the whole file first; import nothing (exit 1) if any row is rejected.")
_JSON = click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
_NO_PROGRESS = click.option("--no-progress", is_flag=True, help="No progress bar on stderr.")
_PARALLEL = click.option("--parallel/--no-parallel", default=None,
                         help="Parse in a second process while this one writes (default: for files of 16 MB "
                              "and more on machines with 4 or more CPUs).")


@import_group.command("shopify-csv")
@_FILE
@click.option("--shop", help="Shop domain in the import keys (default: [shopify].shop).")
@_STRICT
@_PARALLEL
@_JSON
@_NO_PROGRESS
@pass_app
def import_shopify_csv_cmd(app, file, shop, strict, parallel, as_json, no_progress):
    """Import the Orders CSV that Shopify admin exports (Orders > Export)."""
    from .shopify_csv import import_shopify_csv

    shop = shop or app.settings.section("shopify").get("shop")
    if not shop:
        raise click.UsageError("give --shop (no [shopify].shop in the configuration): the keys of imported "
                               "orders name the shop")
    require_schema(app)
    progress = _Progress(not no_progress, os.path.getsize(file), f"checking {file.name}" if strict
                         else f"importing {file.name}")
    try:
        report = import_shopify_csv(app.engine, file, shop=shop, now=app.now(), strict=strict, parallel=parallel,
                                    on_read=progress.update,
                                    on_restart=lambda: progress.start(f"importing {file.name}"), app=app.app)
    except ImportFileError as e:
        raise _file_error(e) from None
    finally:
        progress.finish()
    _report(report, as_json=as_json, strict=strict)


@import_group.command("transactions")
@_FILE
@click.option("--customer-col", required=True, metavar="C", help="Column with the customer's email or id.")
@click.option("--date-col", required=True, metavar="D", help="Column with the purchase date (or date and time).")
@click.option("--amount-col", required=True, metavar="A", help="Column with the amount paid.")
@click.option("--currency", help="ISO 4217 currency of the amounts (or --currency-col).")
@click.option("--currency-col", metavar="COL", help="Column with each row's currency.")
@click.option("--order-col", metavar="COL", help="Column with an order id: rows sharing it are one order's items.")
@click.option("--sku-col", metavar="COL", help="Column with the item's SKU (makes an order line).")
@click.option("--title-col", metavar="COL", help="Column with the item's name (makes an order line).")
@click.option("--quantity-col", metavar="COL", help="Column with the item's quantity (default 1).")
@click.option("--customer-kind", type=click.Choice(["auto", "email", "external-id"]), default="auto",
              show_default=True, help="auto: values with @ are emails, others external ids.")
@click.option("--date-format", metavar="FMT", help="strptime format of the dates (default: ISO 8601 or YYYYMMDD).")
@click.option("--timezone", "tz_name", default="UTC", show_default=True,
              help="IANA time zone of dates without a UTC offset.")
@click.option("--delimiter", default=",", show_default=True, help="Field separator (\\t or 'tab' for tabs).")
@click.option("--namespace", default="txn", show_default=True,
              help="Prefix of the import keys; use another one per distinct source of purchases.")
@_STRICT
@_PARALLEL
@_JSON
@_NO_PROGRESS
@pass_app
def import_transactions_cmd(app, file, customer_col, date_col, amount_col, currency, currency_col, order_col,
                            sku_col, title_col, quantity_col, customer_kind, date_format, tz_name, delimiter,
                            namespace, strict, parallel, as_json, no_progress):
    """Import any store's purchase log: one row per purchase (or per item, with --order-col)."""
    from .transactions_csv import TransactionColumns, import_transactions

    if (currency is None) == (currency_col is None):
        raise click.UsageError("give exactly one of --currency and --currency-col")
    if currency is not None:
        try:
            currency = parse_currency(currency, "--currency")
        except RowError:
            raise click.BadParameter(f"{currency!r} is not an ISO 4217 code", param_hint="--currency") from None
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(f"unknown time zone {tz_name!r}", param_hint="--timezone") from None
    delimiter = {"\\t": "\t", "tab": "\t"}.get(delimiter, delimiter)
    if len(delimiter) != 1:
        raise click.BadParameter("one character", param_hint="--delimiter")
    if not namespace or ":" in namespace or len(namespace) > 32:
        raise click.BadParameter("1-32 characters without ':'", param_hint="--namespace")
    columns = TransactionColumns(customer=customer_col, date=date_col, amount=amount_col, currency=currency_col,
                                 order=order_col, sku=sku_col, quantity=quantity_col, title=title_col)
    require_schema(app)
    progress = _Progress(not no_progress, os.path.getsize(file), f"checking {file.name}" if strict
                         else f"importing {file.name}")
    try:
        report = import_transactions(app.engine, file, columns=columns, now=app.now(), currency=currency, tz=tz,
                                     date_format=date_format, delimiter=delimiter, customer_kind=customer_kind,
                                     namespace=namespace, strict=strict, parallel=parallel,
                                     on_read=progress.update,
                                     on_restart=lambda: progress.start(f"importing {file.name}"), app=app.app)
    except ImportFileError as e:
        raise _file_error(e) from None
    finally:
        progress.finish()
    _report(report, as_json=as_json, strict=strict)


@import_group.command("shopify")
@click.option("--since", required=True, type=WHEN, help="Import orders created on or after this date (UTC).")
@click.option("--until", type=WHEN, help="... and before this one.")
@click.option("--poll-seconds", type=click.FloatRange(0.1, 600), default=5.0, show_default=True,
              help="Wait between polls of the bulk operation.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(1), default=6 * 3600.0, show_default=True,
              help="Give up waiting after this many seconds (the operation keeps running at Shopify).")
@_JSON
@_NO_PROGRESS
@pass_app
def import_shopify_cmd(app, since, until, poll_seconds, timeout_s, as_json, no_progress):
    """Import order history through a GraphQL bulk operation (JSONL result).

    Orders older than 60 days need the app's read_all_orders scope.
    """
    from .shopify_bulk import BulkOperationError, import_shopify_bulk

    s = app.settings.section("shopify")
    if not s:
        raise ConfigProblem("no [shopify] section in the configuration")
    if until is not None and until <= since:
        raise click.BadParameter("must be after --since", param_hint="--until")
    try:
        client = app.shopify_client()
    except (RuntimeError, ValueError) as e:
        raise ConfigProblem(str(e)) from None
    require_schema(app)
    progress = _Progress(False, None, "")

    def on_status(op):
        if not no_progress:
            click.echo(f"bulk operation {op.get('id')}: {op.get('status')}, {op.get('objectCount') or 0} objects",
                       err=True)

    def on_download(size):
        nonlocal progress
        progress = _Progress(not no_progress, size, "downloading orders")
        return progress.update

    from ..platforms.errors import PlatformError

    try:
        report = import_shopify_bulk(app.engine, client, shop=s["shop"], since=since, until=until, now=app.now(),
                                     poll_seconds=poll_seconds, timeout_seconds=timeout_s, on_status=on_status,
                                     on_download=on_download, app=app.app)
    except BulkOperationError as e:
        raise click.ClickException(str(e)) from None
    except PlatformError as e:
        raise click.ClickException(f"Shopify: {e}") from None
    finally:
        progress.finish()
    _report(report, as_json=as_json)


@import_group.command("zendesk")
@click.option("--since", required=True, type=WHEN, help="Import tickets changed on or after this date (UTC).")
@click.option("--no-ratings", is_flag=True, help="Tickets only, no satisfaction ratings.")
@_JSON
@_NO_PROGRESS
@pass_app
def import_zendesk_cmd(app, since, no_ratings, as_json, no_progress):
    """Import tickets (incremental cursor export, with requesters) and satisfaction ratings."""
    from ..platforms.errors import PlatformError
    from .zendesk_export import import_zendesk

    if not app.settings.section("zendesk"):
        raise ConfigProblem("no [zendesk] section in the configuration")
    try:
        client = app.zendesk_client()
    except (RuntimeError, ValueError) as e:
        raise ConfigProblem(str(e)) from None
    require_schema(app)
    now = app.now()
    start = since
    total = max(int((now - since).total_seconds()), 1)
    progress = _Progress(not no_progress and since < now, total, "importing tickets")
    done = [0]

    def on_progress(reached):
        at = min(max(int((reached - start).total_seconds()), 0), total)
        if at > done[0]:
            progress.update(at - done[0])
            done[0] = at

    try:
        report = import_zendesk(app.engine, client, since=since, now=now, ratings=not no_ratings,
                                on_progress=on_progress, app=app.app)
    except PlatformError as e:
        raise click.ClickException(f"Zendesk: {e}") from None
    finally:
        progress.finish()
    summary = (f"imported {report.imported} tickets, updated {report.updated}, skipped {report.skipped} deleted; "
               f"ratings: imported {report.extra['ratings_imported']}, skipped "
               f"{report.extra['ratings_skipped']} already imported; rejected {report.rejected_rows} records")
    _report(report, as_json=as_json, summary=summary)
