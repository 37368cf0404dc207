from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('settlement', '0007_wechat_pay_orders_notifications_trade_bills')]

    initial = False

    operations = [
        ops.CreateModel(
            name='DunningPlan',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('contract', fields.OneToOneField('settlement.Contract', source_field='contract_id', db_constraint=True, to_field='id', related_name='dunning_plan', on_delete=OnDelete.CASCADE)),
                ('offsets', fields.JSONField(description='days from the due date, e.g. [-3, 0, 7, 15, 30]', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('escalate_after', fields.SmallIntField(default=30, description='days after the due date staff are told')),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'dunning_plan', 'app': 'settlement', 'pk_attr': 'id', 'table_description': "The reminder days of one contract, counted from the bill's due date."},
            bases=['Model'],
        ),
    ]
