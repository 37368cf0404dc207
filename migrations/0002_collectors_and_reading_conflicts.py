from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('settlement', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Collector',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(unique=True, max_length=100)),
                ('key_sha256', fields.CharField(unique=True, max_length=64)),
                ('active', fields.BooleanField(default=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'collector', 'app': 'settlement', 'pk_attr': 'id', 'table_description': 'An AMI head-end or data logger gateway allowed to push readings and telemetry.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ReadingConflict',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('meter_serial', fields.CharField(db_index=True, max_length=32)),
                ('register', fields.CharField(max_length=16)),
                ('read_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('value', fields.CharField(description='as received', max_length=32)),
                ('stored_value', fields.CharField(null=True, description='what it contradicts', max_length=32)),
                ('code', fields.CharField(max_length=32)),
                ('message', fields.CharField(max_length=300)),
                ('source', fields.CharField(max_length=16)),
                ('received_from', fields.CharField(description='collector:<name>, staff:<id> or import:<file>', max_length=100)),
                ('received_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('resolved_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('resolved_by', fields.ForeignKeyField('settlement.Staff', source_field='resolved_by_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('resolution', fields.CharField(null=True, max_length=300)),
            ],
            options={'table': 'reading_conflict', 'app': 'settlement', 'pk_attr': 'id', 'table_description': 'A reading that was refused because it contradicts what is stored, kept for staff.'},
            bases=['Model'],
        ),
    ]
