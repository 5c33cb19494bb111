"""What an export and an import did, counted, in the lines the app shows after each; and the
agreement paragraph the export report and the project's description carry."""
from __future__ import annotations

from dataclasses import dataclass, field

from store.agreement import AgreementRow

# Starts the paragraph of the project's description each export rewrites; the text before it is left alone.
AGREEMENT_HEADING = "Agreement between annotators"


@dataclass
class ExportReport:
    project_id: int
    project_created: bool = False
    tasks_created: int = 0
    tasks_recovered: int = 0  # tasks already in Label Studio that the store had lost track of
    tasks_repaired: int = 0  # tasks the store had sent that are gone from Label Studio: sent again
    predictions_created: int = 0
    annotations_created: int = 0
    annotations_recovered: int = 0  # created by an earlier try whose answer was lost: linked, not re-sent
    failures: list[str] = field(default_factory=list)  # corrections in here stay unexported
    notes: list[str] = field(default_factory=list)  # exported, but not quite as wished (e.g. annotator name)
    agreement: list[AgreementRow] = field(default_factory=list)  # on the listings two annotators reviewed

    def lines(self) -> list[str]:
        """A one-line summary, then every failure and note, then the agreement: what the app shows after an export."""
        summary = (f"Exported to Label Studio project {self.project_id}: {self.tasks_created} tasks, "
                   f"{self.predictions_created} predictions, {self.annotations_created} annotations")
        found = [f"{n} {what} already there from an earlier try" for n, what in
                 ((self.tasks_recovered, "tasks"), (self.annotations_recovered, "annotations")) if n]
        if self.tasks_repaired:
            found.append(f"{self.tasks_repaired} tasks gone from Label Studio sent again, with their current correction")
        failed = [f"{len(self.failures)} failed (they go out with the next export)"] if self.failures else []
        agreement = [agreement_paragraph(self.agreement)] if self.agreement else []
        return ["; ".join([summary, *found, *failed]) + ".", *self.failures, *self.notes, *agreement]


def agreement_paragraph(rows: list[AgreementRow]) -> str:
    """The agreement in one paragraph: 'Agreement between annotators (span F1 ...): colour: F1 85.7% (...); ...'."""
    return (f"{AGREEMENT_HEADING} (span F1 between the first two annotators' verdicts on each listing both "
            f"reviewed): {'; '.join(row.line() for row in rows)}.")


def with_agreement(description: str, paragraph: str) -> str:
    """A project description with its agreement paragraph replaced by `paragraph`; the rest is the owner's."""
    kept = description.split(AGREEMENT_HEADING)[0].rstrip()
    return f"{kept}\n\n{paragraph}" if kept else paragraph


@dataclass
class ImportReport:
    project_id: int
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    from_store: int = 0  # annotations this store exported itself, unchanged in Label Studio since
    unknown_tasks: int = 0  # tasks that were not created from this store
    withdrawn: list[str] = field(default_factory=list)  # annotations deleted in Label Studio
    rejected: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)  # changed on both sides since the last sync

    def lines(self) -> list[str]:
        """A one-line summary with every count, then each conflict and refusal: what the app shows."""
        counts = [f"{self.added} added", f"{self.updated} updated (edited in Label Studio)",
                  f"{self.unchanged} unchanged", f"{self.from_store} exported from here, unchanged"]
        if self.unknown_tasks:
            counts.append(f"{self.unknown_tasks} task{'s' * (self.unknown_tasks != 1)} not from this store")
        if self.withdrawn:
            counts.append(f"{len(self.withdrawn)} deleted in Label Studio (withdrawn here)")
        if self.conflicts:
            counts.append(f"{len(self.conflicts)} conflict{'s' * (len(self.conflicts) != 1)} (both versions kept)")
        if self.rejected:
            counts.append(f"{len(self.rejected)} refused (nothing stored for them)")
        return [f"Imported from Label Studio project {self.project_id}: {', '.join(counts)}.",
                *self.withdrawn, *self.conflicts, *self.rejected]
