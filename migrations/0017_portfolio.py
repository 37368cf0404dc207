from tortoise import migrations
from tortoise.migrations import operations as ops
from settlement.models.enums import MeterKind
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('settlement', '0016_contract_owner_bears_nearby_fees')]

    initial = False

    operations = [
        ops.AlterModelOptions(
            name='Meter',
            options={'table': 'meter', 'app': 'settlement', 'pk_attr': 'id', 'table_description': "A meter on the plant's site: grid (关口表), generation (发电表), water or gas."},
        ),
        ops.AlterField(
            model_name='Meter',
            name='kind',
            field=fields.CharEnumField(description='GRID: grid\nGENERATION: generation\nWATER: water\nGAS: gas', enum_type=MeterKind, max_length=16),
        ),
        ops.AddField(
            model_name='Meter',
            name='replaced_at',
            field=fields.DatetimeField(null=True, description='when it replaced that meter', auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Meter',
            name='replaces',
            field=fields.ForeignKeyField('settlement.Meter', source_field='replaces_id', null=True, description='the meter this one replaced', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT),
        ),
        ops.AddField(
            model_name='Owner',
            name='code',
            field=fields.CharField(null=True, unique=True, description="the company's own owner number, the key of a portfolio import", max_length=32),
        ),
        ops.AddField(
            model_name='Staff',
            name='code',
            field=fields.CharField(null=True, unique=True, description="工号, the staff member's number, the key of a portfolio import", max_length=32),
        ),
        ops.AddField(
            model_name='Tariff',
            name='currency',
            field=fields.CharField(default='CNY', description="ISO 4217 code of the tariff's prices", max_length=3),
        ),
        ops.AddField(
            model_name='Tariff',
            name='format',
            field=fields.CharField(default='pvsettle', description="pvsettle (billing_engine's format) or urdb", max_length=8),
        ),
    ]
