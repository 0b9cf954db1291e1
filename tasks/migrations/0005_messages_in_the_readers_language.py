"""Messages become sentences (message id + parameters, JSON) rendered in each reader's language.

The text written so far is kept as it was, as a plain JSON string: it is shown as written.
"""

from django.db import migrations

import deploy_portal.messages

FIELDS = (("task", "status_message", "status message"), ("taskevent", "message", "message"), ("taskinstance", "message", "message"))


def copy_text(apps, schema_editor):
    for model_name, field, _label in FIELDS:
        model = apps.get_model("tasks", model_name)
        rows = []
        for pk, text in model.objects.exclude(**{field: ""}).values_list("pk", field).iterator(chunk_size=2000):
            rows.append(model(pk=pk, **{f"{field}_json": text}))
            if len(rows) == 2000:
                model.objects.bulk_update(rows, [f"{field}_json"])
                rows = []
        model.objects.bulk_update(rows, [f"{field}_json"])


def copy_back(apps, schema_editor):
    for model_name, field, _label in FIELDS:
        model = apps.get_model("tasks", model_name)
        for row in model.objects.iterator(chunk_size=2000):
            value = getattr(row, f"{field}_json")
            setattr(row, field, value if isinstance(value, str) else str(value))
            row.save(update_fields=[field])


class Migration(migrations.Migration):

    dependencies = [
        ("tasks", "0004_task_status_idx_with_id"),
    ]

    operations = [
        *(
            migrations.AddField(
                model_name=model_name,
                name=f"{field}_json",
                field=deploy_portal.messages.SentenceField(blank=True, default=str, verbose_name=label),
            )
            for model_name, field, label in FIELDS
        ),
        migrations.RunPython(copy_text, copy_back),
        *(migrations.RemoveField(model_name=model_name, name=field) for model_name, field, _label in FIELDS),
        *(
            migrations.RenameField(model_name=model_name, old_name=f"{field}_json", new_name=field)
            for model_name, field, _label in FIELDS
        ),
    ]
