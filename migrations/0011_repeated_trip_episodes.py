"""Repeated tripping: episodes of a plant tripping at least N times within a window, with their
one staff alarm (settlement.telemetry.outages.check_repeated_trips)."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from settlement.models.outages import AlarmState
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('settlement', '0010_telemetry_samples_without_device_constraint')]

    initial = False

    operations = [
        ops.CreateModel(
            name='TripEpisode',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('plant', fields.ForeignKeyField('settlement.Plant', source_field='plant_id', db_constraint=True, to_field='id', related_name='trip_episodes', on_delete=OnDelete.CASCADE)),
                ('started_at', fields.DatetimeField(description='the trip that brought the count within the window to the threshold', auto_now=False, auto_now_add=False)),
                ('first_trip_at', fields.DatetimeField(description='the earliest trip counted at the start', auto_now=False, auto_now_add=False)),
                ('last_trip_at', fields.DatetimeField(description='the latest trip of the episode so far', auto_now=False, auto_now_add=False)),
                ('trips', fields.IntField(description='trips from first_trip_at to last_trip_at')),
                ('ends_at', fields.DatetimeField(description='when the count falls below the threshold unless the plant trips again', auto_now=False, auto_now_add=False)),
                ('threshold', fields.SmallIntField(description='trips within the window that made it an episode (the setting then)')),
                ('window_s', fields.IntField(description='the window of the setting then [s]')),
                ('detected_at', fields.DatetimeField(description='when the check found it', auto_now=False, auto_now_add=False)),
                ('notified', fields.CharEnumField(default=AlarmState.PENDING, description='the one staff alarm of this episode', enum_type=AlarmState, max_length=8)),
                ('notified_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'plant_trip_episode', 'app': 'settlement', 'unique_together': (('plant', 'started_at'),), 'indexes': [Index(fields=['ends_at'])], 'pk_attr': 'id', 'table_description': 'A plant whose grid connection trips again and again: a run of outages that keeps at least'},
            bases=['Model'],
        ),
    ]
