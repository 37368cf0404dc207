from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from settlement.models.market import PriceMarket
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('settlement', '0018_gateway_device_status')]

    initial = False

    operations = [
        ops.CreateModel(
            name='PriceCurve',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('node', fields.CharField(description='trading node or province, as the source names it', max_length=64)),
                ('market', fields.CharEnumField(description='DAY_AHEAD: day-ahead\nREAL_TIME: real-time', enum_type=PriceMarket, max_length=16)),
                ('source', fields.CharField(description='who published the prices, e.g. the exchange', max_length=64)),
                ('version', fields.CharField(description='the edition of the prices, as the file states it', max_length=64)),
                ('unit', fields.CharField(description='the unit the first file stated, yuan/MWh or yuan/kWh', max_length=16)),
                ('step_minutes', fields.SmallIntField(description='15 or 60 [min]')),
                ('file_name', fields.CharField(description='the file that created the curve', max_length=255)),
                ('imported_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'price_curve', 'app': 'settlement', 'unique_together': (('node', 'market', 'source', 'version'),), 'pk_attr': 'id', 'table_description': "One edition of a node's prices in one market, from one source."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PriceDay',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('curve', fields.ForeignKeyField('settlement.PriceCurve', source_field='curve_id', db_constraint=True, to_field='id', related_name='days', on_delete=OnDelete.CASCADE)),
                ('day', fields.DateField(description='the local date (UTC+8)')),
                ('prices_micro', fields.JSONField(description="the day's interval prices in order [µyuan/kWh]", encoder=JSON_DUMPS, decoder=loads)),
                ('file_name', fields.CharField(description='the file the day came from', max_length=255)),
                ('imported_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'price_day', 'app': 'settlement', 'unique_together': (('curve', 'day'),), 'pk_attr': 'id', 'table_description': "A curve's prices of one local day, 96 or 24 integers [µyuan/kWh]."},
            bases=['Model'],
        ),
    ]
