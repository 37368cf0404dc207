"""Mini-program sessions in the database (mp_session), so that a session token is checked without
Redis and a logout stays final whichever record a process reads (settlement/owners/sessions.py)."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('settlement', '0013_pay_notification_bounded_refusals')]

    initial = False

    operations = [
        ops.CreateModel(
            name='MiniProgramSession',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('session_id', fields.CharField(unique=True, max_length=32)),
                ('identity', fields.ForeignKeyField('settlement.WechatIdentity', source_field='identity_id', db_constraint=True, to_field='id', related_name='sessions', on_delete=OnDelete.CASCADE)),
                ('expires_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('closed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'mp_session', 'app': 'settlement', 'pk_attr': 'id', 'table_description': "A mini-program login: the database's record of which session tokens are open."},
            bases=['Model'],
        ),
    ]
