"""Message templates of one clinic, one module per job:

- ``checks``: what a message class means, the documented variables and their sample values, the
  editor's live check (``check_body``) and the validation that refuses a save;
- ``reading``: the list with usage, one template with its versions, a saved version, the diff of
  two versions, usage per version (and the dataclasses pages get);
- ``editing``: create, update, duplicate, (de)activate, delete, restore a version;
- ``sending``: ``test_send``, one test message through the real delivery pipeline.

Every use case takes a tenant-bound session and the signed-in ``Actor``, checks the role
(``VIEW_TEMPLATES`` to read, ``MANAGE_TEMPLATES`` to change), audits every change and returns
frozen dataclasses, never ORM objects. Callers use the package: ``templates.create_template(...)``.
WhatsApp approval and the Content template link are in ``app.services.whatsapp_templates``.
"""

from app.services.templates.checks import (
    CLINICAL_VARIABLES,
    BodyCheck,
    UnknownVariable,
    VariableInfo,
    check_body,
    class_rules,
    sample_values,
    variable_reference,
    variable_reference_markdown,
)
from app.services.templates.editing import (
    create_template,
    delete_template,
    duplicate_template,
    restore_version,
    set_active,
    update_template,
)
from app.services.templates.reading import (
    TemplateDetail,
    TemplateSummary,
    TemplateUsage,
    TemplateVersionInfo,
    VersionSummary,
    VersionUsage,
    diff_versions,
    get_template,
    get_version,
    list_templates,
    template_usage,
)
from app.services.templates.sending import test_send
from app.services.whatsapp_templates import ensure_sendable_in_bulk  # the bulk wizard's check

__all__ = [
    "CLINICAL_VARIABLES",
    "BodyCheck",
    "TemplateDetail",
    "TemplateSummary",
    "TemplateUsage",
    "TemplateVersionInfo",
    "UnknownVariable",
    "VariableInfo",
    "VersionSummary",
    "VersionUsage",
    "check_body",
    "class_rules",
    "create_template",
    "delete_template",
    "diff_versions",
    "duplicate_template",
    "ensure_sendable_in_bulk",
    "get_template",
    "get_version",
    "list_templates",
    "restore_version",
    "sample_values",
    "set_active",
    "template_usage",
    "test_send",
    "update_template",
    "variable_reference",
    "variable_reference_markdown",
]
