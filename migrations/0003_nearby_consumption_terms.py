from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('settlement', '0002_collectors_and_reading_conflicts')]

    initial = False

    operations = [
        ops.CreateModel(
            name='NearbyConsumptionTerms',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('plant', fields.ForeignKeyField('settlement.Plant', source_field='plant_id', db_constraint=True, to_field='id', related_name='nearby_terms', on_delete=OnDelete.CASCADE)),
                ('effective_from', fields.DateField()),
                ('voltage_level', fields.CharField(description="e.g. 10kV, the T&D price's voltage level", max_length=32)),
                ('td_price', fields.DecimalField(description='per-kWh T&D price of the voltage level [yuan/kWh]', max_digits=10, decimal_places=6)),
                ('average_load_rate', fields.DecimalField(description='published average load rate, e.g. 0.450000 [-]', max_digits=7, decimal_places=6)),
                ('connection_kva', fields.DecimalField(description='grid-connection capacity [kVA]', max_digits=12, decimal_places=3)),
                ('current_capacity_charge', fields.DecimalField(description='capacity charge under current policy [yuan/month]', max_digits=14, decimal_places=2)),
                ('system_operation_fee', fields.DecimalField(description='per grid-drawn kWh [yuan/kWh]', max_digits=10, decimal_places=6)),
                ('wire_loss_price', fields.DecimalField(description='wire-loss cost per grid-drawn kWh [yuan/kWh]', max_digits=10, decimal_places=6)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'nearby_consumption_terms', 'app': 'settlement', 'unique_together': (('plant', 'effective_from'),), 'pk_attr': 'id', 'table_description': 'What a nearby-consumption project pays the grid, from ``effective_from`` until the next version.'},
            bases=['Model'],
        ),
    ]
