"""Notifications whose signature did not hold are kept bounded: who sent them, how big their body
was and its SHA-256 (the body itself only to its first 2 KiB); an index finds the oldest of them
to prune (settlement.pay.payments, issue #20 point 2). Rows kept before keep their whole body."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('settlement', '0012_reading_flags_and_form_findings')]

    initial = False

    operations = [
        ops.AddField(
            model_name='PayNotification',
            name='body_bytes',
            field=fields.IntField(null=True, description='size of the body received [bytes]'),
        ),
        ops.AddField(
            model_name='PayNotification',
            name='body_sha256',
            field=fields.CharField(null=True, description='SHA-256 of the body received, hex', max_length=64),
        ),
        ops.AddField(
            model_name='PayNotification',
            name='source',
            field=fields.CharField(null=True, description="the sender's address (IPv6: its /64)", max_length=64),
        ),
        ops.AddIndex(
            model_name='PayNotification',
            index=Index(fields=['signed_at', 'id']),
        ),
    ]
