from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('settlement', '0017_portfolio')]

    initial = False

    operations = [
        ops.CreateModel(
            name='FieldDeviceStatus',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('collector', fields.ForeignKeyField('settlement.Collector', source_field='collector_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('device', fields.CharField(description="the meter's or the inverter's serial", max_length=64)),
                ('kind', fields.CharField(description='meter or inverter', max_length=16)),
                ('state', fields.CharField(description='online, offline or fault', max_length=16)),
                ('code', fields.CharField(default='', description='why, a stable code of the gateway', max_length=32)),
                ('message', fields.CharField(default='', max_length=300)),
                ('observed_at', fields.DatetimeField(description='the latest report, gateway time', auto_now=False, auto_now_add=False)),
                ('since', fields.DatetimeField(description='the first report of the present state', auto_now=False, auto_now_add=False)),
                ('received_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'field_device_status', 'app': 'settlement', 'unique_together': (('collector', 'device'),), 'pk_attr': 'id', 'table_description': 'The latest state a collector reported of one field device it polls (a meter or an inverter).'},
            bases=['Model'],
        ),
    ]
