from tortoise import migrations
from tortoise.migrations import operations as ops
from settlement.models.outages import AlarmState, OutageCause
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('settlement', '0005_miniapp_owner_side')]

    initial = False

    operations = [
        ops.CreateModel(
            name='PlantOutage',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('plant', fields.ForeignKeyField('settlement.Plant', source_field='plant_id', db_constraint=True, to_field='id', related_name='outages', on_delete=OnDelete.CASCADE)),
                ('cause', fields.CharEnumField(description='SILENT: silent\nFAULT: fault', enum_type=OutageCause, max_length=8)),
                ('started_at', fields.DatetimeField(description='the first moment the plant should have produced and did not', auto_now=False, auto_now_add=False)),
                ('ended_at', fields.DatetimeField(null=True, description='the time of the sample that showed it back, null while open', auto_now=False, auto_now_add=False)),
                ('detected_at', fields.DatetimeField(description='when the check opened it', auto_now=False, auto_now_add=False)),
                ('detail', fields.CharField(default='', description='what was seen, for staff', max_length=300)),
                ('notified', fields.CharEnumField(default=AlarmState.PENDING, description='the staff alarm of the opening', enum_type=AlarmState, max_length=8)),
                ('notified_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('end_notified', fields.CharEnumField(null=True, description='the staff notice of the end, pending once it has ended', enum_type=AlarmState, max_length=8)),
                ('end_notified_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'plant_outage', 'app': 'settlement', 'unique_together': (('plant', 'started_at'),), 'indexes': [Index(fields=['ended_at'])], 'pk_attr': 'id', 'table_description': 'A plant that stopped producing while the sun was up, until it produced again.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='TelemetryRollup',
            name='irradiation_wh_m2',
            field=fields.BigIntField(null=True, description='plane-of-array irradiation [Wh/m2], null without a sensor'),
        ),
        ops.AddField(
            model_name='TelemetrySample',
            name='device_ts',
            field=fields.DatetimeField(null=True, description="the device's own time when it was corrected for clock skew", auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='TelemetrySample',
            name='flags',
            field=fields.SmallIntField(default=0, description='bit set of settlement.telemetry.energy.SampleFlag'),
        ),
        ops.AddField(
            model_name='TelemetrySample',
            name='interval_wh',
            field=fields.BigIntField(null=True, description='energy since the previous counter sample of the device [Wh]'),
        ),
        ops.AddField(
            model_name='TelemetrySample',
            name='irradiance_w_m2',
            field=fields.IntField(null=True, description='plane-of-array irradiance [W/m2]'),
        ),
    ]
