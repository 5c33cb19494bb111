"""Round trip between the corrections store and a Label Studio project.

Export (`store.label_studio.export`) sends every listing as a task, the model's spans as
predictions and the app's corrections as annotations. Import (`store.label_studio.importer`) brings
every change made in Label Studio back as corrections: new annotations, and edits to annotations
that were exported from here or imported before (an edit is a new version of the correction; the
earlier one is kept). When a listing changed in the app too since the last sync, both are kept,
the one made last is current, and the import reports it.

Each export also says how far annotators agree where two reviewed the same listing (`store.agreement`):
in its report, and in the project's description, which Label Studio shows with the project.

Both sides are idempotent: the store remembers which listing is which task and which correction
is which annotation (`store.label_studio_ledger`), so running either again sends or adds nothing
twice, and a correction that failed to go out stays unexported until an export succeeds.
The rooms: `connection` (the server and its failures), `format` (Label Studio's shapes of tasks,
predictions and annotations), `users` (annotator names <-> Label Studio users), `export`, `importer`
and `reports` (what each did, in the lines the app shows).
"""
from store.label_studio.connection import LabelStudioError
from store.label_studio.export import export_to_label_studio
from store.label_studio.format import AnnotationRefused, from_ls_offset, labeling_config, to_ls_offset
from store.label_studio.importer import import_from_label_studio
from store.label_studio.reports import ExportReport, ImportReport

__all__ = ["AnnotationRefused", "ExportReport", "ImportReport", "LabelStudioError", "export_to_label_studio",
           "from_ls_offset", "import_from_label_studio", "labeling_config", "to_ls_offset"]
